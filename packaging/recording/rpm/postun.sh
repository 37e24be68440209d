# RPM %postun of bedrud-recording: systemd forgets the removed drop-in. cargo-generate-rpm 0.21
# cannot add directory entries, so the package does not own its directories: on erase, remove
# them here when empty (/usr/lib/bedrud stays while bedrud is installed).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    for d in /usr/lib/systemd/system/bedrud.service.d /usr/lib/bedrud \
        /usr/share/licenses/bedrud-recording; do
        rmdir "$d" 2>/dev/null || :
    done
fi
