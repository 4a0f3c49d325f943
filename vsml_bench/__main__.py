import sys

from vsml_bench.cli import main

sys.exit(main())
