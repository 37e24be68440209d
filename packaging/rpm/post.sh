# RPM %post: prepare the host (user, private config, state folder, secrets). As Fedora's
# %systemd_post does, a first install enables the unit only if the system's preset policy says so.
/usr/lib/bedrud/host-setup
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset bedrud.service >/dev/null 2>&1 || :
fi
