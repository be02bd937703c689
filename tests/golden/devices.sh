# A device's whole life through the overlay family: CREATE (with initial
# properties), LIST, PROPINFO, GETPROP, SETPROP, STATUS, ACTIVATE, STATS,
# DELETE, with the errors each answers: EEXIST, ENOENT, missing attribute,
# bad property values, required properties unset.
ctl create -e vxlan -s direct -v 42 -p vxlan/listen_ip=10.0.0.1 ov0
ctl create -e vxlan -s direct -v 42 ov0
ctl create -e nosuch -s direct -v 7 ov1
ctl create -e vxlan -s direct -v 16777216 ov1
ctl raw overlay CREATE NAME=ov1 ENCAP=vxlan SEARCH=direct
ctl show
ctl show ov0
ctl show -f ov0
ctl raw overlay STATUS NAME=ov0
ctl raw overlay STATUS NAME=ov9
ctl prop-get ov0
ctl prop-get ov0 mtu vnetid
ctl raw overlay PROPINFO NAME=ov0 PROP_NAME=direct/dest_port
ctl raw overlay PROPINFO NAME=ov0 PROP_NAME=nosuch
ctl raw overlay GETPROP NAME=ov0 PROP_NAME=nosuch
ctl prop-set ov0 mtu=1400
ctl prop-set ov0 mtu=10
ctl raw overlay SETPROP NAME=ov0 PROP_NAME=mtu PROP_VALUE=hex:0102
ctl raw overlay SETPROP NAME=ov0 PROP_NAME=mtu
ctl activate ov0
ctl prop-set ov0 direct/dest_ip=10.0.0.9 direct/dest_port=4789
ctl activate ov0
ctl activate ov0
ctl show -s ov0
ctl show -s
ctl prop-set ov0 vnetid=43
ctl delete ov0
ctl delete ov0
ctl activate ov0
ctl show
