"""An example Switchboard node plugin (see ``nodes.py`` and ``pyproject.toml``)."""
