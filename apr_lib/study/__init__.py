"""The study layer: profiles (params/<name>.yaml) and their validation, run names, the sections of the paper as the
DAG's targets, and what its jobs need. Imports no torch (only apr_lib.names, apr_lib.layout and the like from the
core), so that parsing the Snakefile stays light."""
