"""Backups under shared control: each node's backup is age-encrypted to that node's recovery key,
whose secret is split k-of-m among that node's recovery officers (`recovery`), described by a
manifest the node signs (`manifest`), made offline from the node's store (`create`), checked
without decrypting (`verify`) and opened only with k officer shares per node (`restore`)."""
