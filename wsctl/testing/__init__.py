"""wsctl for pytest: reliability tests of a team's own service in its own test suite.

The plugin (``wsctl.testing.plugin``, registered through the ``pytest11`` entry point)
offers four function-scoped fixtures — ``wsctl_service``, ``wsctl_server``,
``wsctl_chaos``, ``wsctl_probes`` — and collects wsctl scenario files that a project opts
in as test items. docs/pytest.md is the guide.

Nothing is imported here, so that loading the plugin costs a suite that does not use it
nothing: the fixtures import ``harness`` and ``result`` when a test asks for one, and
the collector imports ``scenarios`` only for a file it collects.
"""
