"""GitOps: a git repository as the source of truth. Fetches and reads commits, and applies the
sync plan ``control.gitops`` makes through the control API, like any client."""
