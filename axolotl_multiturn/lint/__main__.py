import sys

from axolotl_multiturn.lint.cli import main

sys.exit(main())
