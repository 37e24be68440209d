# RPM %post of bedrud-recording: make systemd read the drop-in that lets bedrud.service run the
# egress worker; after an upgrade, restart a running bedrud so that it runs the new worker (as
# Fedora's %systemd_postun_with_restart would from bedrud's side).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart bedrud.service >/dev/null 2>&1 || :
    fi
fi
