# RPM %postun, as Fedora's %systemd_postun_with_restart: after an upgrade, restart a running
# bedrud. Configuration and state (/var/lib/bedrud) are kept on erase, as on every RPM system.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart bedrud.service >/dev/null 2>&1 || :
    fi
fi
# cargo-generate-rpm 0.21 cannot add directory entries (its `dir = true` assets fail to build),
# so the package does not own its directories: on erase, remove them here when empty.
if [ "$1" -eq 0 ]; then
    for d in /usr/lib/bedrud /usr/share/doc/bedrud/examples /usr/share/doc/bedrud \
        /usr/share/licenses/bedrud /etc/bedrud; do
        rmdir "$d" 2>/dev/null || :
    done
fi
