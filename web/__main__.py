"""python -m web: the web process (web.app builds and launches it)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when Gradio is imported

from web.app import main

if __name__ == "__main__":
    main()
