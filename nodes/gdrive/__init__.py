"""Google Drive nodes (Drive v3 REST over httpx): list, download (with export), upload.

All HTTP goes through ``transport``; the nodes live in ``files``.
"""

from nodes.gdrive import files  # noqa: F401 - registration by import
