# Shared helpers for the end-to-end shell tests (sourced, not run): result
# lines, free ports on 127.0.0.1, waiting for a listener. The caller sets
# fail=0 first.
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: waits up to 10 s for a listener
    i=0
    while [ $i -lt 100 ]; do
        python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "FAIL: nothing listens on $1"; return 1
}
