"""How a runtime process tells its supervisor why it stopped: its exit code.

The embedded supervisor reads it from the child process, the Kubernetes backend from the pod's
last termination state; both turn it into the replica's failure, which ``control`` reports.
"""

EXIT_OK = 0
EXIT_LOAD_FAILED = 3  # the model could not be loaded; the reason is the log's last line
# 4 is the CLI's exit code for an invalid spec (modelplane.cli.errors.EXIT_SPEC)
EXIT_ARTIFACT_UNAVAILABLE = 5  # the artifact could not be fetched or verified
