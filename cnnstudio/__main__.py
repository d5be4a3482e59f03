import sys

from cnnstudio.cli import main

sys.exit(main())
