import sys

from axolotl_multiturn.cli.lint import main

sys.exit(main())
