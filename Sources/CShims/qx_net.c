#include "qx_net.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

static int tun_open(void) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int tun_setiff(int fd, const char *name, short flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    return ioctl(fd, TUNSETIFF, &ifr) < 0 ? -errno : 0;
}

static short tap_flags(int multi_queue, int vnet_hdr) {
    short flags = IFF_TAP | IFF_NO_PI;
    if (vnet_hdr) flags |= IFF_VNET_HDR;
    if (multi_queue) flags |= IFF_MULTI_QUEUE;
    return flags;
}

// Asks for everything, then, if refused, unit by unit. A refused TUNSETOFFLOAD changes nothing,
// so the device ends with exactly the returned set. USO4 and USO6 are only accepted together.
static unsigned int negotiate_offloads(int fd, unsigned int wanted) {
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)wanted) == 0) return wanted;
    static const unsigned int units[] = {
        QX_TUN_F_CSUM, QX_TUN_F_TSO4, QX_TUN_F_TSO6, QX_TUN_F_TSO_ECN, QX_TUN_F_UFO,
        QX_TUN_F_USO4 | QX_TUN_F_USO6, QX_TUN_F_USO4, QX_TUN_F_USO6,
    };
    unsigned int accepted = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        unsigned int unit = units[i] & wanted & ~accepted;
        if (unit == 0 || unit != (units[i] & wanted)) continue;
        if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(accepted | unit)) == 0) accepted |= unit;
    }
    return accepted;
}

int qx_tap_create(const char *name, struct qx_tap_params *p) {
    p->accepted = 0;
    p->failed_step = QX_TAP_STEP_OPEN;
    int fd = tun_open();
    if (fd < 0) return fd;
    int r = 0;
    // 1. TUNSETIFF creates the device; IFF_TUN_EXCL makes an existing one fail (EBUSY) instead
    //    of being attached and reconfigured.
    p->failed_step = QX_TAP_STEP_SETIFF;
    if ((r = tun_setiff(fd, name, (short)(tap_flags(p->multi_queue, 1) | IFF_TUN_EXCL))) < 0) goto out;
    // 2. Owner and group before persisting, so the device is never persistent and unowned.
    p->failed_step = QX_TAP_STEP_OWNER;
    if (p->owner >= 0 && ioctl(fd, TUNSETOWNER, (unsigned long)p->owner) < 0) { r = -errno; goto out; }
    p->failed_step = QX_TAP_STEP_GROUP;
    if (p->group >= 0 && ioctl(fd, TUNSETGROUP, (unsigned long)p->group) < 0) { r = -errno; goto out; }
    p->failed_step = QX_TAP_STEP_VNETHDRSZ;
    if (p->vnet_hdr_size > 0 && ioctl(fd, TUNSETVNETHDRSZ, &p->vnet_hdr_size) < 0) { r = -errno; goto out; }
    p->failed_step = QX_TAP_STEP_OFFLOAD;
    p->accepted = negotiate_offloads(fd, p->offloads);
    // 3. Persist last: if anything above failed, closing the fd removes the device.
    p->failed_step = QX_TAP_STEP_PERSIST;
    if (ioctl(fd, TUNSETPERSIST, 1UL) < 0) { r = -errno; goto out; }
    p->failed_step = 0;
    // 4. A multi-queue TAP can drop our queue now, so the device has no queue attached even while
    //    a concurrently forked child still holds a copy of this fd (until its exec closes it).
    if (p->multi_queue) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        ifr.ifr_flags = IFF_DETACH_QUEUE;
        (void)ioctl(fd, TUNSETQUEUE, &ifr);
    }
out:
    close(fd);
    return r;
}

int qx_tap_attach(const char *name, int multi_queue, int vnet_hdr) {
    int fd = tun_open();
    if (fd < 0) return fd;
    int r = tun_setiff(fd, name, tap_flags(multi_queue, vnet_hdr));
    if (r < 0) { close(fd); return r; }
    return fd;
}

int qx_tap_vnet_hdr_size(int fd) {
    int size = 0;
    return ioctl(fd, TUNGETVNETHDRSZ, &size) < 0 ? -errno : size;
}

static int ethtool_call(const char *ifname, void *data) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = data;
    int r = ioctl(s, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
    close(s);
    return r;
}

int qx_ethtool_feature_count(const char *ifname) {
    // struct ethtool_sset_info ends in a flexible array: room for one count after it.
    uint64_t storage[(sizeof(struct ethtool_sset_info) + sizeof(uint32_t) + 7) / 8];
    memset(storage, 0, sizeof storage);
    struct ethtool_sset_info *info = (struct ethtool_sset_info *)storage;
    info->cmd = ETHTOOL_GSSET_INFO;
    info->sset_mask = 1ULL << ETH_SS_FEATURES;
    int r = ethtool_call(ifname, info);
    if (r < 0) return r;
    if (!(info->sset_mask & (1ULL << ETH_SS_FEATURES))) return -EOPNOTSUPP;
    return (int)info->data[0];
}

int qx_ethtool_features(const char *ifname, int count, char *names, uint32_t *active) {
    if (count <= 0) return 0;
    size_t words = ((size_t)count + 31) / 32;
    struct ethtool_gstrings *strings = calloc(1, sizeof *strings + (size_t)count * ETH_GSTRING_LEN);
    struct ethtool_gfeatures *features = calloc(1, sizeof *features + words * sizeof(struct ethtool_get_features_block));
    int r = -ENOMEM;
    if (!strings || !features) goto out;
    strings->cmd = ETHTOOL_GSTRINGS;
    strings->string_set = ETH_SS_FEATURES;
    strings->len = (uint32_t)count;
    if ((r = ethtool_call(ifname, strings)) < 0) goto out;
    features->cmd = ETHTOOL_GFEATURES;
    features->size = (uint32_t)words;
    if ((r = ethtool_call(ifname, features)) < 0) goto out;
    memcpy(names, strings->data, (size_t)count * ETH_GSTRING_LEN);
    for (size_t i = 0; i < words; i++) active[i] = features->features[i].active;
    r = count;
out:
    free(strings);
    free(features);
    return r;
}

int qx_private_sysfs(void) {
    if (unshare(CLONE_FS | CLONE_NEWNS) < 0) return -errno;
    // Slave, so our sysfs mount does not propagate back to the host's mount namespace.
    if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) return -errno;
    if (umount2("/sys", MNT_DETACH) < 0 && errno != EINVAL) return -errno;
    if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -errno;
    return 0;
}

int qx_bind_thread_netns(const char *path) {
    return mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0 ? -errno : 0;
}

int qx_make_shared_mountpoint(const char *dir) {
    if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0) return 0;
    if (errno != EINVAL) return -errno;
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) return -errno;
    return mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0 ? -errno : 0;
}

int qx_detach_mount(const char *path) {
    return umount2(path, MNT_DETACH) < 0 ? -errno : 0;
}

int qx_mknod_char(const char *path, unsigned int mode, unsigned int major, unsigned int minor) {
    return mknod(path, S_IFCHR | (mode & 07777), makedev(major, minor)) < 0 ? -errno : 0;
}

int qx_char_device_numbers(const char *path, unsigned int *major_out, unsigned int *minor_out) {
    struct stat st;
    if (stat(path, &st) < 0) return -errno;
    if (!S_ISCHR(st.st_mode)) return -ENODEV;
    *major_out = major(st.st_rdev);
    *minor_out = minor(st.st_rdev);
    return 0;
}
