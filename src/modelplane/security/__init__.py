"""Who may do what: API keys, roles per namespace, and the checks the control API and the
gateway apply."""
