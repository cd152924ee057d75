"""`python -m tholos.node.signer`: see tholos.node.signer.process."""

import sys

from tholos.node.signer.process import main

sys.exit(main())
