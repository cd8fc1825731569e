#!/bin/sh
# /init of the `cargo xtask linux` initramfs (busybox ash). It loads the modules listed in
# /etc/modules, converts every NVDIMM namespace to fsdax with the memmap on the device and
# 2 MiB alignment (what `ndctl create-namespace -m fsdax -M dev` does, as sysfs writes),
# onlines hot-added memory blocks as udev would, and prints stable key=value records:
#   linux: ...        events (boot, module, fsdax, uevent, ready, dump begin/end)
#   linux.<what> ...  figures (block, memory, iomem, vmstat, nd.*, virtio_mem)
# Console commands: dump | online | dmesg | poweroff (prints @@EXIT status=0 first).

export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp
stty -echo 2>/dev/null

KVER=$(uname -r)
ND=/sys/bus/nd/devices
MEM=/sys/devices/system/memory

now_ms() {
	read -r up _ </proc/uptime
	echo $((${up%.*} * 1000 + ${up#*.} * 10))
}

# The errno name of the last failed write, from ash's "write error: <strerror>".
errno_of() {
	case "$(cat /tmp/err 2>/dev/null)" in
	*"No such device or address"*) echo ENXIO ;;
	*"Invalid argument"*) echo EINVAL ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*"Cannot allocate memory"*) echo ENOMEM ;;
	*"No such device"*) echo ENODEV ;;
	*"No space left on device"*) echo ENOSPC ;;
	*"Numerical result out of range"*) echo ERANGE ;;
	*) echo EIO ;;
	esac
}

# put VALUE FILE: writes with the error kept in /tmp/err.
put() {
	echo "$1" 2>/tmp/err >"$2"
}

hex() { printf '0x%x' "$1"; }

echo "linux: boot kernel=$KVER machine=$(uname -m) uptime_ms=$(now_ms)"

while read -r name path; do
	if insmod "/lib/modules/$KVER/$path" 2>/tmp/err; then
		echo "linux: module name=$name state=loaded"
	else
		echo "linux: module name=$name state=failed error=$(tr ' ' '_' </tmp/err)"
	fi
done </etc/modules
for name in $(cat /etc/modules.builtin); do
	echo "linux: module name=$name state=builtin"
done
for name in $(cat /etc/modules.absent); do
	echo "linux: module name=$name state=absent"
done

# Wait until the nd bus has stopped growing for one second (at most 20 s).
settle() {
	last=""
	for _ in $(seq 1 40); do
		now=$(ls $ND 2>/dev/null | tr '\n' ' ')
		[ -n "$now" ] && [ "$now" = "$last" ] && return
		last=$now
		sleep 0.5
	done
}

# fsdax REGION NAMESPACE: the sysfs steps of `ndctl create-namespace -m fsdax -M dev -a 2M`.
fsdax() {
	r=$1 ns=$2
	nsd=$ND/$ns
	if [ "$(cat "$nsd/size")" = 0 ]; then
		# A labelled (aliasing) region: allocate the namespace like ndctl does, the
		# largest available size in units of the region's alignment.
		avail=$(cat "$ND/$r/available_size") align=$(cat "$ND/$r/align")
		size=$((avail / align * align))
		if [ "$size" -le 0 ]; then
			echo "linux: fsdax region=$r namespace=$ns state=failed step=size error=ENOSPC"
			return
		fi
		cat /proc/sys/kernel/random/uuid >"$nsd/uuid"
		if ! put "$size" "$nsd/size"; then
			echo "linux: fsdax region=$r namespace=$ns state=failed step=size error=$(errno_of)"
			return
		fi
	fi
	[ -e "$nsd/driver" ] && put "$ns" "$nsd/driver/unbind"
	pfn=$(cat "$ND/$r/pfn_seed")
	p=$ND/$pfn
	put pmem "$p/mode"
	put 2097152 "$p/align"
	cat /proc/sys/kernel/random/uuid >"$p/uuid"
	if ! put "$ns" "$p/namespace"; then
		echo "linux: fsdax region=$r namespace=$ns pfn=$pfn state=failed step=namespace error=$(errno_of)"
		return
	fi
	put "$pfn" /sys/bus/nd/drivers/nd_pmem/bind
	if [ -e "$p/driver" ]; then
		echo "linux: fsdax region=$r namespace=$ns pfn=$pfn state=enabled"
	else
		echo "linux: fsdax region=$r namespace=$ns pfn=$pfn state=failed step=bind error=$(errno_of)"
	fi
}

vmstat() {
	grep -E '^nr_memmap(_boot)?_pages ' /proc/vmstat | tr ' ' '=' | tr '\n' ' '
}
# The memmap counters before any namespace is converted (the pfn devices' memmap is the
# difference to the first dump's).
echo "linux.vmstat.boot $(vmstat)"

if [ -d /sys/bus/nd ]; then
	settle
	for rd in $ND/region*; do
		[ -e "$rd" ] || continue
		r=${rd##*/}
		n=${r#region}
		[ -e "$ND/namespace$n.0" ] && fsdax "$r" "namespace$n.0"
	done
fi

# online_all: what a udev rule does for a new memory block (SUBSYSTEM=="memory",
# ACTION=="add", ATTR{state}=="offline", ATTR{state}="online").
online_all() {
	for b in $MEM/memory*; do
		[ "$(cat "$b/state")" = offline ] || continue
		if put online "$b/state"; then
			echo "linux: online block=${b##*/} result=ok uptime_ms=$(now_ms)"
		else
			echo "linux: online block=${b##*/} result=$(errno_of)"
		fi
	done
}

dump() {
	seq=$1
	echo "linux: dump begin seq=$seq uptime_ms=$(now_ms)"
	bs=$((0x$(cat $MEM/block_size_bytes)))
	echo "linux.block size=$(hex "$bs") auto_online=$(cat $MEM/auto_online_blocks 2>/dev/null)"
	for b in $MEM/memory*; do
		[ -e "$b/phys_index" ] || continue
		i=$((0x$(cat "$b/phys_index")))
		zones=$(cat "$b/valid_zones" 2>/dev/null | tr ' ' ',')
		echo "linux.memory block=${b##*/} start=$(hex $((i * bs))) end=$(hex $(((i + 1) * bs))) state=$(cat "$b/state") zones=$zones"
	done
	while IFS= read -r line; do
		text=${line%%:*}
		name=${line#*: }
		lead=${text%%[0-9a-f]*}
		range=${text#"$lead"}
		range=${range% }
		echo "linux.iomem start=0x${range%-*} end=0x${range#*-} depth=$((${#lead} / 2)) name=$(echo "$name" | tr ' ' '_')"
	done </proc/iomem
	echo "linux.vmstat $(vmstat)"
	echo "linux.param memmap_on_memory=$(cat /sys/module/memory_hotplug/parameters/memmap_on_memory 2>/dev/null)"
	for d in $ND/region* $ND/namespace* $ND/pfn*; do
		[ -e "$d" ] || continue
		n=${d##*/}
		kind=${n%%[0-9]*}
		line="linux.nd.$kind name=$n"
		for a in resource size align mode namespace holder available_size nstype; do
			[ -r "$d/$a" ] && line="$line $a=$(cat "$d/$a" 2>/dev/null | tr ' ' '_')"
		done
		[ -e "$d/driver" ] && line="$line driver=$(basename "$(readlink "$d/driver")")"
		echo "$line"
	done
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d/device" ] || continue
		[ "$(cat "$d/device")" = 0x0018 ] || continue
		echo "linux.virtio_mem dev=${d##*/} driver=$(basename "$(readlink "$d/driver" 2>/dev/null)")"
	done
	echo "linux: dump end seq=$seq uptime_ms=$(now_ms)"
}

# Hot-add: every memory uevent is reported, and a block still offline is onlined.
cat >/bin/on-uevent <<'EOF'
#!/bin/sh
[ "$SUBSYSTEM" = memory ] || exit 0
read -r up _ </proc/uptime
b=${DEVPATH##*/}
state=$(cat "/sys$DEVPATH/state" 2>/dev/null)
echo "linux: uevent action=$ACTION block=$b state=$state uptime_ms=$((${up%.*} * 1000 + ${up#*.} * 10))"
if [ "$ACTION" = add ] && [ "$state" = offline ]; then
	if echo online 2>/dev/null >"/sys$DEVPATH/state"; then
		read -r up _ </proc/uptime
		echo "linux: online block=$b result=ok uptime_ms=$((${up%.*} * 1000 + ${up#*.} * 10))"
	else
		echo "linux: online block=$b result=failed"
	fi
fi
EOF
chmod 755 /bin/on-uevent
uevent /bin/on-uevent &

online_all
echo "linux: ready uptime_ms=$(now_ms)"
seq=0
while read -r cmd _; do
	case "$cmd" in
	dump)
		seq=$((seq + 1))
		dump $seq
		;;
	online) online_all ;;
	dmesg)
		dmesg | sed 's/^/linux.dmesg /'
		echo "linux: dmesg end"
		;;
	poweroff)
		echo "@@EXIT status=0"
		sync
		poweroff -f
		;;
	"") ;;
	*) echo "error: unknown command '$cmd' (dump, online, dmesg, poweroff)" ;;
	esac
done
echo "@@EXIT status=1"
poweroff -f
