# RPM %preun, as Fedora's %systemd_preun: on erase (not upgrade), stop and disable the unit.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now bedrud.service >/dev/null 2>&1 || :
fi
