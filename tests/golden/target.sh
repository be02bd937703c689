# The overlay_target family on a point-mode device (active) and a
# dynamic-mode device (not active): INFO; ASSOCIATE and DISASSOCIATE
# (ENOTSUP on a point device, EEXIST, EINVAL when not associated);
# DEGRADE and RESTORE; LOOKUP with nothing to take (ETIME) and a wait too
# long (EINVAL); RESPOND, DROP and PKT of a request this handle does not
# hold (EINVAL); INJECT and RESEND on a device that is not active (EAGAIN)
# and of a frame too short (EINVAL); CACHE_GET of the point device (its
# point, for any MAC) and of the inactive dynamic device (ENXIO);
# CACHE_SET, CACHE_REMOVE, CACHE_FLUSH (ENOTSUP on the point device, ENXIO
# on the inactive one); CACHE_LIST as a dump, of every device and of one;
# LOOKUP_STATS, all zero with no device active in dynamic mode, and
# refused (EINVAL) when it names a device.
ctl create -e vxlan -s direct -v 10 -p vxlan/listen_ip=10.0.0.1,direct/dest_ip=10.0.0.2,direct/dest_port=4789,ifname=tgpt0 pt0
ctl activate pt0
ctl create -e vxlan -s files -v 11 -p vxlan/listen_ip=10.0.0.1,ifname=tgdy0 dy0
ctl raw overlay_target INFO NAME=pt0
ctl raw overlay_target INFO NAME=dy0
ctl raw overlay_target INFO NAME=nosuch
ctl raw overlay_target ASSOCIATE NAME=pt0
ctl raw overlay_target ASSOCIATE NAME=dy0
ctl raw overlay_target ASSOCIATE NAME=dy0
ctl raw overlay_target INFO NAME=dy0
ctl raw overlay_target DISASSOCIATE NAME=dy0
ctl raw overlay_target DISASSOCIATE NAME=dy0
ctl raw overlay_target DEGRADE NAME=dy0 STATUS_MSG=maintenance
ctl raw overlay_target INFO NAME=dy0
ctl raw overlay_target RESTORE NAME=dy0
ctl raw overlay_target DEGRADE NAME=dy0
ctl raw overlay_target LOOKUP TIMEOUT_MS=10
ctl raw overlay_target LOOKUP TIMEOUT_MS=600000
ctl raw overlay_target RESPOND REQID=99 DEST_PORT=4789
ctl raw overlay_target DROP REQID=99
ctl raw overlay_target PKT REQID=99
ctl raw overlay_target INJECT NAME=dy0 FRAME=hex:ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002
ctl raw overlay_target RESEND NAME=dy0 FRAME=hex:ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002
ctl raw overlay_target INJECT NAME=pt0 FRAME=hex:ffff
ctl raw overlay_target CACHE_GET NAME=pt0 MAC=hex:020000000009
ctl raw overlay_target CACHE_GET NAME=dy0 MAC=hex:020000000009
ctl raw overlay_target CACHE_SET NAME=pt0 MAC=hex:020000000009 FLAGS=1
ctl raw overlay_target CACHE_SET NAME=dy0 MAC=hex:020000000009 FLAGS=1
ctl raw overlay_target CACHE_REMOVE NAME=pt0 MAC=hex:020000000009
ctl raw overlay_target CACHE_REMOVE NAME=dy0 MAC=hex:020000000009
ctl raw overlay_target CACHE_FLUSH NAME=pt0
ctl raw overlay_target CACHE_FLUSH NAME=dy0
ctl raw overlay_target CACHE_LIST --dump
ctl raw overlay_target CACHE_LIST --dump NAME=pt0
ctl raw overlay_target LOOKUP_STATS
ctl raw overlay_target LOOKUP_STATS NAME=pt0
ctl delete dy0
ctl delete pt0
