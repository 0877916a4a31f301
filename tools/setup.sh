#!/usr/bin/env bash
# setup.sh: install the Debian 12 packages ccdl needs to build, test, run and analyse.
# Idempotent: installs only what is missing. Run as root (or with sudo available).
set -euo pipefail
packages=(
    build-essential autoconf automake libtool pkg-config   # build
    mpich libmpich-dev                                     # MPI
    libdnnl-dev                                            # oneDNN 2.x
    libhdf5-mpich-dev hdf5-tools                           # parallel HDF5, h5dump
    openmpi-bin libopenmpi-dev libhdf5-openmpi-dev         # the Open MPI build (tools/site-build.sh)
    libhdf5-dev                                            # a serial HDF5, which configure must refuse
    help2man                                               # the man page
    libjansson-dev zlib1g-dev liblapacke-dev               # JSON, gzip, eigenvalues
    dataset-fashion-mnist                                  # the default data
    python3 python3-h5py python3-numpy python3-matplotlib  # analysis (/usr/bin/python3)
    python3-pandas                                         # the notebook API
    clang-format                                           # format check in make check
    slurm-wlm munge                                        # sweeps (tests start a one-node cluster)
    # the German catalogs tools/debian_corpus.py reads (its PINNED list; docs/corpus.md)
    apt aptitude-common binutils-common coreutils dpkg e2fsprogs-l10n elinks-data
    evolution-data-server-common gawk gcc-12-locales gettext git gnupg-l10n
    gsettings-desktop-schemas krb5-locales ktexteditor-data libc-l10n libglib2.0-data
    libgnutls30 libgphoto2-l10n libgtk2.0-common libparted-i18n libsane-common libvirt-l10n
    lynx-common mailutils-common mc-data nano tar util-linux-locales weechat-core wx3.2-i18n
)
# Open MPI takes over the `mpicc` / `mpiexec` alternatives when installed after MPICH; ccdl's
# default build, the README and the Slurm jobs (srun --mpi=pmi2) are MPICH's, so pin it.
pin_mpich() {
    local s=""; [ "$(id -u)" -eq 0 ] || s="sudo"
    $s update-alternatives --quiet --set mpi /usr/bin/mpicc.mpich
    $s update-alternatives --quiet --set mpirun /usr/bin/mpirun.mpich
}
missing=()
for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages present"
    pin_mpich
    exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
pin_mpich
echo "setup: done"
