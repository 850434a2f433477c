# No models. This module exists so that Django sends `pre_migrate` to this app: the hot backup
# before `migrate` listens to it with this app as sender, so it runs once per migrate run.
