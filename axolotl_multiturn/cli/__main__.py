import sys

from axolotl_multiturn.cli import main

sys.exit(main())
