import sys

from .run_gateway import main

sys.exit(main())
