#!/usr/bin/env bash
# A two-node Slurm cluster on this machine, to practise (and test) the course's multi-node lines.
#
#   sudo multinode/minicluster.sh up        # two "nodes", node1 and node2, and Slurm over them
#   sudo multinode/minicluster.sh shell     # a shell on node1 (the login node): sbatch, srun, salloc...
#   sudo multinode/minicluster.sh exec node2 hostname      # one command on a node
#   sudo multinode/minicluster.sh status    # what runs, by process id
#   sudo multinode/minicluster.sh down      # stop everything it started, delete everything it made
#   sudo multinode/minicluster.sh restart-node node2      # a node that failed comes back
#
# Each node is a network namespace with its own host name and hosts file, cabled (a veth each) to
# one switch (a bridge) with link-local addresses (169.254.77.1 and .2): traffic between them
# crosses network interfaces and TCP/IP stacks, as between two machines. This machine sits on the
# same switch as `host` (169.254.77.254), so that a JupyterHub here can serve the nodes (make hub
# with Slurm); nothing is routed beyond the switch.
# Slurm (slurmctld on node1, one slurmd per node) and munge run with their own key, socket, ports,
# configuration, spool and logs, all in one folder (MINICLUSTER_DIR, default
# /tmp/dlscale-minicluster), so that a Slurm or munge the machine already runs is left alone.
# Every Slurm command needs that configuration: `exec` and `shell` set SLURM_CONF; elsewhere
# `. $MINICLUSTER_DIR/env`.
#
# Needs root (namespaces, mounts), iproute2's `ip netns`, util-linux's nsenter/unshare, and
# Debian's slurm-wlm and munge packages. Exit status: 0 done, 1 failed (the reason is printed),
# 2 usage, 3 not root, 4 no network namespaces, 5 Slurm or munge missing; `status`: 0 when up.
set -euo pipefail

STATE=${MINICLUSTER_DIR:-/tmp/dlscale-minicluster}
NODES=(node1 node2)
PREFIX=dlscale-                       # network namespaces: dlscale-node1, dlscale-node2
SUBNET=169.254.77                     # link-local: never routed beyond the switch
HOST_ADDRESS=$SUBNET.254              # this machine on the switch (the hub's side)
SWITCH=${PREFIX}switch                # the bridge on this machine
CTLD_PORT=6917                        # not Slurm's default 6817/6818: a real Slurm may be running
SLURMD_PORT=6918
WAIT=${MINICLUSTER_WAIT:-60}          # seconds for the nodes to come up idle
MARKER=.minicluster                   # in STATE: down deletes STATE only when it holds this file

say() { echo "minicluster: $*"; }
die() { local code=$1; shift; echo "minicluster: error: $*" >&2; exit "$code"; }

address() { echo "$SUBNET.${1#node}"; }   # node2 -> 169.254.77.2

usage() {   # the comment at the top; on standard error after a wrong command
    local code=${1:-2}
    if [ "$code" = 0 ]; then show_usage; else show_usage >&2; fi
    exit "$code"
}
show_usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

requirements() {
    [ "$(id -u)" = 0 ] || die 3 "needs root (it creates network namespaces and mounts): run it with sudo"
    [ "$(uname -s)" = Linux ] || die 4 "needs Linux network namespaces"
    command -v ip >/dev/null || die 4 "no 'ip' command: install iproute2 (Debian: apt-get install iproute2)"
    ip netns list >/dev/null 2>&1 || die 4 "'ip netns' does not work here (no network namespaces?)"
    for tool in nsenter unshare setsid; do
        command -v "$tool" >/dev/null || die 4 "no '$tool': install util-linux"
    done
    local missing=()
    for tool in slurmctld slurmd sinfo sbatch; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    for tool in munged mungekey munge; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die 5 "missing ${missing[*]}: install Slurm and munge (Debian: apt-get install slurm-wlm munge)"
}

# --- process bookkeeping: only the process ids this script started, checked by start time -------

# A process's start time (field 22 of /proc/PID/stat, after the command name in parentheses);
# nothing for a zombie: it has exited, only its parent has not collected it yet.
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '$1 != "Z" {print $20}'; }

record() {   # record NAME PID: the daemon NAME runs as PID
    echo "$1 $2 $(start_time "$2")" >>"$STATE/pids"
}

alive() {    # alive PID STARTTIME: the same process still runs (not a new one with a reused id)
    [ -n "$2" ] && [ "$(start_time "$1")" = "$2" ]
}

# --- the nodes ------------------------------------------------------------------------------------

write_on_node() {
    # on-node NODE CMD [ARGS...]: run CMD on NODE: its network namespace, its host name, its hosts
    # file. Not `ip netns exec`: that remounts /sys, which hides the cgroup mounts slurmd checks.
    cat >"$STATE/bin/on-node" <<EOF
#!/bin/sh
# on-node NODE CMD [ARGS...]: run CMD on a node of the mini cluster (made by minicluster.sh).
node=\$1; shift
case "\$node" in node1|node2) ;; *) echo "on-node: no node '\$node' (node1 or node2)" >&2; exit 2 ;; esac
exec nsenter --net=/run/netns/$PREFIX\$node unshare --uts --mount --propagation private \\
    sh -c 'mount --bind "\$0" /etc/hosts && hostname "\$1" && shift && exec "\$@"' \\
    /etc/netns/$PREFIX\$node/hosts "\$node" env SLURM_CONF="$STATE/etc/slurm.conf" "\$@"
EOF
    # rsh HOST COMMAND: Intel MPI's Hydra starts its proxy on HOST this way (-launcher rsh
    # -launcher-exec), with the command as one string, as rsh would pass it to a remote shell.
    cat >"$STATE/bin/rsh" <<EOF
#!/bin/sh
# Hydra's rsh launcher for the mini cluster: rsh [options] HOST COMMAND...
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host=\$1; shift
exec "$STATE/bin/on-node" "\$host" sh -c "\$*"
EOF
    chmod 755 "$STATE/bin/on-node" "$STATE/bin/rsh"
}

make_nodes() {
    [ -d /etc/netns ] || { mkdir /etc/netns && touch "$STATE/made-etc-netns"; }   # removed by down
    for node in "${NODES[@]}"; do
        ip netns add "$PREFIX$node"
        ip -n "$PREFIX$node" link set lo up
        mkdir -p "/etc/netns/$PREFIX$node"
        {
            echo "127.0.0.1 localhost"
            for other in "${NODES[@]}"; do echo "$(address "$other") $other"; done
            echo "$HOST_ADDRESS host"
        } >"/etc/netns/$PREFIX$node/hosts"
    done
    # The switch, and one cable per node: eth0 on the node, $PREFIX$node on the switch.
    ip link add "$SWITCH" type bridge
    ip addr add "$HOST_ADDRESS/24" dev "$SWITCH"
    ip link set "$SWITCH" up
    for node in "${NODES[@]}"; do
        ip link add "$PREFIX$node" type veth peer name eth0 netns "$PREFIX$node"
        ip link set "$PREFIX$node" master "$SWITCH" up
        ip -n "$PREFIX$node" addr add "$(address "$node")/24" dev eth0
        ip -n "$PREFIX$node" link set eth0 up
    done
    printf '%s\n' "${NODES[@]}" >"$STATE/hosts"   # an Intel MPI hostfile
}

# --- munge and Slurm ------------------------------------------------------------------------------

start_munge() {
    # The key is root's alone; the socket is everyone's, as in /run/munge (a learner's sbatch).
    mkdir -p "$STATE/munge" "$STATE/munge-key"
    chmod 755 "$STATE/munge"
    chmod 700 "$STATE/munge-key"
    mungekey --create --keyfile="$STATE/munge-key/munge.key" >/dev/null
    # --force: munged refuses a socket folder under the world-writable /tmp otherwise.
    # setsid: the daemons leave the caller's session, so a Ctrl-C there does not reach them.
    # --origin: the address munged writes into credentials, given so that it looks up no name.
    # In the foreground it logs to its standard error: munged.out.
    setsid munged --foreground --force --key-file="$STATE/munge-key/munge.key" --socket="$STATE/munge/socket" \
        --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/seed" --origin=127.0.0.1 \
        >>"$STATE/munge/munged.out" 2>&1 &
    record munged $!
    for _ in $(seq 50); do
        if munge -n -S "$STATE/munge/socket" 2>/dev/null | unmunge -S "$STATE/munge/socket" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    die 1 "munged did not answer on its socket; its log ends: $(tail -3 "$STATE/munge/munged.out" 2>/dev/null)"
}

write_slurm_conf() {
    mkdir -p "$STATE/etc" "$STATE/spool" "$STATE/log" "$STATE/run"
    : >"$STATE/etc/plugstack.conf"   # no SPANK plugins from the system's /etc/slurm
    local cpus
    cpus=$(nproc)
    cat >"$STATE/etc/slurm.conf" <<EOF
# The mini cluster's Slurm configuration (generated by multinode/minicluster.sh up)
ClusterName=minicluster
SlurmctldHost=node1($(address node1))
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Its own munged; a requeued job may start again 10 s after it stopped (default 120 s).
AuthInfo=socket=$STATE/munge/socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
PlugStackConfig=$STATE/etc/plugstack.conf
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# A node that stops answering is down after 15 s, and back in service when its slurmd returns.
SlurmdTimeout=15
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=node1 NodeAddr=$(address node1) CPUs=$cpus State=UNKNOWN
NodeName=node2 NodeAddr=$(address node2) CPUs=$cpus State=UNKNOWN
PartitionName=course Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$STATE/env" <<EOF
# . this file to use the mini cluster from a shell on node1 (multinode/minicluster.sh shell does)
export SLURM_CONF=$STATE/etc/slurm.conf
export MINICLUSTER_DIR=$STATE
export MINICLUSTER_HOSTFILE=$STATE/hosts
export MINICLUSTER_RSH=$STATE/bin/rsh
export MINICLUSTER_ON_NODE=$STATE/bin/on-node
EOF
}

start_slurmd() {   # start_slurmd NODE: (re)start the node's slurmd
    local node=$1
    setsid "$STATE/bin/on-node" "$node" slurmd -D -N "$node" -f "$STATE/etc/slurm.conf" \
        >>"$STATE/log/slurmd-$node.out" 2>&1 </dev/null &
    record "slurmd-$node" $!   # setsid and on-node exec all the way down: $! is slurmd itself
}

start_slurm() {
    setsid "$STATE/bin/on-node" node1 slurmctld -D -f "$STATE/etc/slurm.conf" \
        >>"$STATE/log/slurmctld.out" 2>&1 </dev/null &
    record slurmctld $!
    for node in "${NODES[@]}"; do start_slurmd "$node"; done
}

node_states() { "$STATE/bin/on-node" node1 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u; }

wait_idle() {
    local deadline=$((SECONDS + WAIT)) states=""
    while ((SECONDS < deadline)); do
        states=$(node_states || true)
        if [ "$(echo "$states" | grep -c ' idle$')" = "${#NODES[@]}" ]; then
            return 0
        fi
        dead=$(daemons_dead)
        [ -z "$dead" ] || die 1 "$dead stopped while starting; its log:
$(tail -5 "$STATE/log/$dead.log" "$STATE/log/$dead.out" 2>/dev/null)"
        sleep 0.5
    done
    die 1 "the nodes were not idle after $WAIT s (sinfo: ${states:-no answer}); slurmctld's log ends:
$(tail -5 "$STATE/log/slurmctld.log" 2>/dev/null)"
}

daemons_dead() {   # the first recorded daemon that no longer runs (latest record of each name)
    [ -f "$STATE/pids" ] || return 0
    tac "$STATE/pids" | awk '!seen[$1]++' | while read -r name pid started; do
        alive "$pid" "$started" || { echo "$name"; break; }
    done
}

# --- the commands ---------------------------------------------------------------------------------

is_up() {
    [ -f "$STATE/pids" ] && [ -z "$(daemons_dead)" ] && [ -e "/run/netns/${PREFIX}node1" ] &&
        [ "$(node_states | grep -c -E ' (idle|mix|alloc)$')" = "${#NODES[@]}" ]
}

up() {
    requirements
    if is_up; then
        say "already up (state in $STATE)"
        return 0
    fi
    # Whatever a failed or interrupted earlier start left behind goes first.
    down quiet
    if [ -e "$STATE" ] && [ ! -f "$STATE/$MARKER" ]; then
        die 1 "$STATE exists and is not the mini cluster's folder: set MINICLUSTER_DIR to a new folder"
    fi
    mkdir -p "$STATE/bin"
    chmod 755 "$STATE"   # Slurm's configuration and munge's socket serve every account
    touch "$STATE/$MARKER"
    # A start that fails (or is interrupted) takes down what it had started.
    trap 'echo "minicluster: starting failed: cleaning up" >&2; down quiet' EXIT
    trap 'exit 130' INT TERM
    : >"$STATE/pids"
    make_nodes
    write_on_node
    start_munge
    write_slurm_conf
    start_slurm
    wait_idle
    trap - EXIT INT TERM
    say "up: ${NODES[*]} idle ($(address node1), $(address node2); this machine: $HOST_ADDRESS); Slurm's configuration: $STATE/etc/slurm.conf"
    say "try: $0 shell   (then: sinfo; srun -N2 hostname; sbatch ...)"
}

kill_recorded() {
    [ -f "$STATE/pids" ] || return 0
    local signal=$1
    while read -r name pid started; do
        if alive "$pid" "$started"; then kill "-$signal" "$pid" 2>/dev/null || true; fi
    done <"$STATE/pids"
}

down() {
    local quiet=${1:-}
    [ "$(id -u)" = 0 ] || die 3 "needs root: run it with sudo"
    # 1. the daemons this script started, by process id (SIGTERM, then SIGKILL after 5 s)
    kill_recorded TERM
    for _ in $(seq 50); do
        [ -n "$(still_running)" ] || break
        sleep 0.1
    done
    kill_recorded KILL
    for _ in $(seq 50); do
        [ -n "$(still_running)" ] || break
        sleep 0.1
    done
    # An `up` killed between starting munged and recording it: munged's own pid file, if that
    # process is the one serving this folder's socket.
    local pid
    pid=$(cat "$STATE/munge/munged.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--socket=$STATE/munge/socket"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # 2. whatever still runs on the nodes (jobs, slurmstepd): only our namespaces hold them
    for node in "${NODES[@]}"; do
        if [ -e "/run/netns/$PREFIX$node" ]; then
            ip netns pids "$PREFIX$node" | xargs -r kill -KILL 2>/dev/null || true
        fi
    done
    # 3. the switch, the namespaces (deleting them removes the cables), their hosts files, the state folder
    if ip link show "$SWITCH" >/dev/null 2>&1; then ip link del "$SWITCH"; fi
    for node in "${NODES[@]}"; do
        if [ -e "/run/netns/$PREFIX$node" ]; then
            for _ in $(seq 20); do   # a process killed above may still hold the namespace
                [ -z "$(ip netns pids "$PREFIX$node" 2>/dev/null)" ] && break
                sleep 0.1
            done
            ip netns delete "$PREFIX$node"
        fi
        rm -rf "/etc/netns/$PREFIX$node"
    done
    if [ -f "$STATE/made-etc-netns" ]; then rmdir /etc/netns 2>/dev/null || true; fi
    # Only a folder this script made (its marker inside): MINICLUSTER_DIR could name any folder.
    if [ -f "$STATE/$MARKER" ]; then rm -rf "$STATE"; fi
    [ -n "$quiet" ] || say "down: no namespace, daemon or file of the mini cluster left"
}

still_running() {
    [ -f "$STATE/pids" ] || return 0
    while read -r name pid started; do
        if alive "$pid" "$started"; then echo "$name"; fi
    done <"$STATE/pids"
}

status() {
    if [ ! -f "$STATE/pids" ]; then
        say "down"
        return 1
    fi
    say "state in $STATE"
    awk '!seen[$1]++' <(tac "$STATE/pids") | tac | while read -r name pid started; do
        if alive "$pid" "$started"; then echo "  $name: running, pid $pid"; else echo "  $name: not running (was pid $pid)"; fi
    done
    for node in "${NODES[@]}"; do
        [ -e "/run/netns/$PREFIX$node" ] && echo "  $node: namespace $PREFIX$node, $(address "$node")"
    done
    echo "  Slurm: $(node_states | tr '\n' ' ')"
    is_up
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
exec)
    [ $# -ge 3 ] || usage
    [ -x "$STATE/bin/on-node" ] || die 1 "the mini cluster is not up: $0 up"
    shift
    exec "$STATE/bin/on-node" "$@" ;;
shell)
    [ -x "$STATE/bin/on-node" ] || die 1 "the mini cluster is not up: $0 up"
    exec "$STATE/bin/on-node" node1 bash --rcfile <(echo ". ~/.bashrc 2>/dev/null; . $STATE/env; PS1='[\\h] \\w\\$ '") -i ;;
restart-node)
    # For the lost-node exercise: the node comes back (its slurmd starts again).
    [ $# -eq 2 ] && [[ " ${NODES[*]} " == *" $2 "* ]] || usage
    requirements
    start_slurmd "$2" ;;
-h | --help | help) usage 0 ;;
*) usage ;;
esac
