import sys

from d2b_installer.run import main

sys.exit(main())
