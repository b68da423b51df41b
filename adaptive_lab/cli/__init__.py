"""The ``adaptive-lab`` command line: ``main`` plus one module per subcommand."""
