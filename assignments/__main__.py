"""``python -m assignments release [NOTEBOOK...]`` / ``grade SUBMISSIONS_DIR`` / ``list``."""

import sys

from assignments.pipeline import main

sys.exit(main())
