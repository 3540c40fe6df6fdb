#!/usr/bin/env bash
# Start a single-node SLURM (controller + compute node on this machine) for the cluster test, without
# systemd: munged as user munge, slurmctld and slurmd by hand. Idempotent: installs only what is
# missing, rewrites a config only when it changed (restarting the daemons then), and starts only the
# daemons that are not already answering. Run as root. Ends when `sinfo` shows the node up, or fails
# with the daemons' log tails after $SLURM_START_TIMEOUT seconds (default 90).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
conf_dir=/etc/slurm
timeout_s="${SLURM_START_TIMEOUT:-90}"
host="$(hostname)"

say() { echo "slurm-start: $*"; }
fail() {
    echo "slurm-start: ERROR: $*" >&2
    for log in /var/log/munge/munged.log /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do
        [[ -f "$log" ]] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
    done
    exit 1
}
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2> /dev/null; }

[[ "$(id -u)" -eq 0 ]] || fail "run as root (it installs packages and starts daemons)"

# 1. packages
if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null \
    || ! command -v sinfo > /dev/null || ! command -v munged > /dev/null; then
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge > /dev/null
else
    say "packages present: $(slurmctld -V)"
fi

# 2. munge: key, directories, daemon (as user munge)
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
if munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
    say "munged already running"
else
    say "starting munged as user munge"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 20); do
        munge -n 2> /dev/null | unmunge > /dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n | unmunge > /dev/null 2>&1 || fail "munged does not answer"
fi

# 3. the node's name must resolve, to itself
if ! getent hosts "$host" > /dev/null; then
    say "adding $host to /etc/hosts"
    echo "127.0.0.1 $host" >> /etc/hosts
fi

# 4. configuration: the node line uses the hardware slurmd detects, so it never drains as INVAL
hardware="$(slurmd -C | head -n 1 | tr ' ' '\n' \
    | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')"
[[ "$hardware" == *CPUs=* && "$hardware" == *RealMemory=* ]] || fail "cannot read the hardware from slurmd -C"
install -d -m 755 "$conf_dir"
changed=0
install_if_changed() { # source mode destination
    if ! cmp -s "$1" "$3"; then
        install -m "$2" "$1" "$3"
        say "wrote $3"
        changed=1
    fi
}
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
sed -e "s|@HOST@|$host|g" -e "s|@CONFDIR@|$conf_dir|g" -e "s|@NODE_HARDWARE@|${hardware% }|" \
    "$here/slurm.conf.in" > "$rendered"
install_if_changed "$rendered" 644 "$conf_dir/slurm.conf"
install_if_changed "$here/gres.conf" 644 "$conf_dir/gres.conf"
install_if_changed "$here/task_prolog.sh" 755 "$conf_dir/task_prolog.sh"
install -d -o slurm -g slurm -m 755 /var/lib/slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d -m 755 /var/lib/slurm/slurmd

# 5. daemons: restart the ones we find running when the configuration changed
if [[ "$changed" -eq 1 ]]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if alive "$pidfile"; then
            say "configuration changed: stopping pid $(cat "$pidfile") ($pidfile)"
            kill "$(cat "$pidfile")"
            for _ in $(seq 1 20); do alive "$pidfile" || break; sleep 0.5; done
        fi
    done
fi
if alive /run/slurmctld.pid && scontrol ping 2> /dev/null | grep -q UP; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    slurmctld
fi
for _ in $(seq 1 "$timeout_s"); do
    scontrol ping 2> /dev/null | grep -q UP && break
    sleep 1
done
scontrol ping 2> /dev/null | grep -q UP || fail "slurmctld does not answer after ${timeout_s} s"
if alive /run/slurmd.pid; then
    say "slurmd already running"
else
    say "starting slurmd"
    slurmd
fi

# 6. wait for the node; a node left down or drained by an earlier run is resumed
deadline=$((SECONDS + timeout_s))
while true; do
    state="$(sinfo -h -n "$host" -o %t 2> /dev/null | head -n 1)"
    case "$state" in
        idle | mix | alloc | comp) break ;;
        down* | drain* | drng*) scontrol update NodeName="$host" State=RESUME 2> /dev/null || true ;;
    esac
    ((SECONDS < deadline)) || fail "node $host is '${state:-unknown}', not idle, after ${timeout_s} s"
    sleep 1
done
say "node $host is $state; $(sinfo -h -N -o '%N: %c CPUs, %m MB, %G, partition %P')"
