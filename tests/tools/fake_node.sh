#!/bin/sh
# Open MPI's launch agent (mpirun --mca plm_rsh_agent) for fake nodes on one
# machine, in place of ssh: `fake_node.sh HOST COMMAND...` runs the daemon
# command of node HOST in new UTS and mount namespaces, with host name HOST
# and /tmp bound to $MFRES_FAKE_NODES/HOST, so that Open MPI sees separate
# nodes (MPI_COMM_TYPE_SHARED splits per HOST) and each node has its own
# /tmp, as on a cluster. Needs root (or CAP_SYS_ADMIN). Use it with host
# names that do not resolve to this machine, e.g.
#   mpirun --host node1:2,node2:2 --mca plm_rsh_agent tests/tools/fake_node.sh \
#       --mca plm_rsh_no_tree_spawn 1 --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo ...
# A checkout under /tmp stays visible on every node at its own path (the
# shared file system of the fake cluster), as does every path listed in
# $MFRES_FAKE_NODES_SHARED (separated by colons).
host=$1
shift
root=${MFRES_FAKE_NODES:?set MFRES_FAKE_NODES to a folder for the /tmp of each node}
checkout=$(cd "$(dirname "$0")/../.." && pwd -P) || exit 1
mkdir -p "$root/$host" || exit 1
exec unshare --uts --mount --propagation private /bin/sh -c '
    hostname "$0" || exit 1
    node=$1 shared=$2
    shift 2
    IFS=:
    for path in $shared; do
        case $path in
        /tmp/*) mkdir -p "$node/${path#/tmp/}" && mount --bind "$path" "$node/${path#/tmp/}" ||
                    exit 1 ;;
        esac
    done
    unset IFS
    mount --rbind "$node" /tmp && exec /bin/sh -c "$*"' \
    "$host" "$root/$host" "$checkout${MFRES_FAKE_NODES_SHARED:+:$MFRES_FAKE_NODES_SHARED}" "$@"
