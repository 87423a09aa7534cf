"""``python -m otm.testing``: run the fake provider server until interrupted."""

from .server import main

main()
