"""A reference screening (KYT) service: signed risk scores for addresses, for tests and demos."""
