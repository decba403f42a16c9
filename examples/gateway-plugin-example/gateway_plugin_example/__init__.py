"""An example AI gateway plugin package: the `parrot` provider (`provider`), its fake server
(`fake_server`) and the `redact-emails` stage (`redact`). Entry points in `pyproject.toml`."""
