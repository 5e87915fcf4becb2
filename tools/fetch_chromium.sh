#!/usr/bin/env bash
# Fetch Debian's chromium-headless-shell and the shared libraries it lacks here, unpacked into a folder
# (no root install, nothing outside DEST changes), for the HTML report test (tests/tools/test_cmd_report.py).
#   bash tools/fetch_chromium.sh [DEST]     DEST default: $MMDEPLOY_CHROMIUM_DIR or ~/.cache/mmdeploy/chromium
# Prints the wrapper's path (DEST/chromium-headless-shell); the tests look there. Takes a few seconds.
set -euo pipefail
dest="${1:-${MMDEPLOY_CHROMIUM_DIR:-$HOME/.cache/mmdeploy/chromium}}"
wrapper="$dest/chromium-headless-shell"
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
    echo "$wrapper"; exit 0
fi
command -v apt-get >/dev/null || { echo "fetch_chromium: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# a private package-list folder: the system's apt state is left alone
o="-oDir::State::Lists=$tmp/lists -oDir::Cache=$tmp/cache"
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/root"
apt-get $o update >"$tmp/update.log" 2>&1 || { cat "$tmp/update.log" >&2; exit 1; }
# the browser, and the libraries of its dependency list that a slim Debian 12 image lacks
# (found with ldd; libraries an image already has are not fetched again)
packages="chromium-headless-shell chromium-common libopenh264-7 libdouble-conversion3 libopus0
    libharfbuzz-subset0 libxnvctrl0 libpulse0 libflac12 libminizip1 libopenjp2-7 libogg0 libsndfile1
    libasyncns0 libvorbis0a libvorbisenc2 libmpg123-0 libmp3lame0"
(cd "$tmp/debs" && apt-get $o download $packages >"$tmp/download.log" 2>&1) \
    || { cat "$tmp/download.log" >&2; exit 1; }
for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$tmp/root"; done
stage="$dest.partial.$$"
rm -rf "$stage"; mkdir -p "$stage"
mv "$tmp/root/usr/lib/chromium" "$stage/chromium"
mv "$tmp/root/usr/lib/x86_64-linux-gnu" "$stage/lib"
cat >"$stage/chromium-headless-shell" <<'WRAP'
#!/usr/bin/env bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LD_LIBRARY_PATH="$here/chromium:$here/lib:$here/lib/pulseaudio${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/chromium/chromium-headless-shell" --no-sandbox --disable-gpu "$@"
WRAP
chmod +x "$stage/chromium-headless-shell"
missing="$(LD_LIBRARY_PATH="$stage/chromium:$stage/lib:$stage/lib/pulseaudio" ldd "$stage/chromium/chromium-headless-shell" | grep 'not found' || true)"
if [ -n "$missing" ]; then
    echo "fetch_chromium: libraries still missing:" >&2; echo "$missing" >&2; rm -rf "$stage"; exit 1
fi
rm -rf "$dest"; mkdir -p "$(dirname "$dest")"; mv "$stage" "$dest"
"$wrapper" --version >/dev/null
echo "$wrapper"
