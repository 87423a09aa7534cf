import sys

from otm.cli import main

sys.exit(main())
