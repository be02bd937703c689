# Multicast groups: overlay_handle JOIN_GROUP and LEAVE_GROUP (config 1,
# status 2, target 3), joining twice and leaving a group not joined (both
# succeed, as on Linux), an unknown group (ENOENT) and a missing group
# attribute (EINVAL); the notification-only overlay commands DEACTIVATED and
# STATUS_CHANGED sent as requests (EOPNOTSUPP).
ctl raw overlay_handle JOIN_GROUP HANDLE_ATTR_MCAST_GROUP=1
ctl raw overlay_handle JOIN_GROUP HANDLE_ATTR_MCAST_GROUP=2
ctl raw overlay_handle JOIN_GROUP HANDLE_ATTR_MCAST_GROUP=3
ctl raw overlay_handle JOIN_GROUP HANDLE_ATTR_MCAST_GROUP=99
ctl raw overlay_handle JOIN_GROUP
ctl raw overlay_handle LEAVE_GROUP HANDLE_ATTR_MCAST_GROUP=1
ctl raw overlay_handle LEAVE_GROUP HANDLE_ATTR_MCAST_GROUP=99
ctl raw overlay_handle LEAVE_GROUP
ctl raw overlay DEACTIVATED NAME=ov0
ctl raw overlay STATUS_CHANGED NAME=ov0
