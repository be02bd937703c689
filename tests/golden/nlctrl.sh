# nlctrl and overlay_handle: resolving families by name and by id, the dump
# of every family, GET_PID, SERVER_STATS, and the errors of the dispatch validation
# (unknown family name and id, unknown command, missing attribute).
ctl raw nlctrl GETFAMILY CTRL_ATTR_FAMILY_NAME=overlay
ctl raw nlctrl GETFAMILY CTRL_ATTR_FAMILY_ID=32
ctl raw --dump nlctrl GETFAMILY
ctl raw nlctrl GETFAMILY CTRL_ATTR_FAMILY_NAME=nosuch
ctl raw nlctrl GETFAMILY CTRL_ATTR_FAMILY_ID=99
ctl raw nlctrl GETFAMILY
ctl raw overlay_handle GET_PID
ctl raw --no-ack overlay_handle GET_PID
ctl raw overlay_handle SERVER_STATS
ctl raw 99 1
ctl raw overlay 77
ctl raw overlay_handle 9
ctl raw --genl-version 0 overlay LIST NAME=ov0
