"""``python -m liveduet``."""

import sys

from liveduet.live import signals

signals.install()  # first: a stop signal during the heavy imports below must not raise in them

from liveduet.cli import main  # noqa: E402  (after install, on purpose)

sys.exit(main())
