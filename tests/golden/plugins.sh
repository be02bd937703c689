# PLUGINS as a dump (overlayctl plugins) and as a transaction, and the
# error for a plugin that is not loaded.
ctl plugins
ctl raw overlay PLUGINS PLUGIN_NAME=vxlan
ctl raw overlay PLUGINS PLUGIN_NAME=direct
ctl raw overlay PLUGINS PLUGIN_NAME=nosuch
