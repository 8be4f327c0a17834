import sys

from harness.demo.cli import main

sys.exit(main())
