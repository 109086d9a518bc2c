// qx_net.h: TUN/TAP and ethtool ioctls and the mount calls for a namespace's private sysfs,
// which Swift cannot make (ioctl and mount flag macros). Functions return >= 0 or -errno.
#pragma once
#include <stdint.h>
#include <sys/types.h>

// TUN_F_* offload bits; USO4/USO6 are missing from older <linux/if_tun.h>.
enum {
    QX_TUN_F_CSUM = 0x01,
    QX_TUN_F_TSO4 = 0x02,
    QX_TUN_F_TSO6 = 0x04,
    QX_TUN_F_TSO_ECN = 0x08,
    QX_TUN_F_UFO = 0x10,
    QX_TUN_F_USO4 = 0x20,
    QX_TUN_F_USO6 = 0x40,
};

// IFF_* values of <linux/if_tun.h>, which Swift cannot import next to glibc's <net/if.h>.
enum {
    QX_IFF_TUN = 0x0001,
    QX_IFF_TAP = 0x0002,
    QX_IFF_NO_PI = 0x1000,
    QX_IFF_VNET_HDR = 0x4000,
    QX_IFF_MULTI_QUEUE = 0x0100,
};

// Attributes applied by qx_tap_create through TUNSET* ioctls (function-like ioctl macros).
struct qx_tap_params {
    int multi_queue;          // IFF_MULTI_QUEUE
    int64_t owner;            // uid, or -1 to leave unset
    int64_t group;            // gid, or -1 to leave unset
    int vnet_hdr_size;        // TUNSETVNETHDRSZ, 0 to keep the kernel's default
    unsigned int offloads;    // QX_TUN_F_* wanted
    unsigned int accepted;    // out: QX_TUN_F_* the kernel took
    int failed_step;          // out: which ioctl failed (enum qx_tap_step)
};

enum qx_tap_step {
    QX_TAP_STEP_OPEN = 1,
    QX_TAP_STEP_SETIFF,
    QX_TAP_STEP_OWNER,
    QX_TAP_STEP_GROUP,
    QX_TAP_STEP_VNETHDRSZ,
    QX_TAP_STEP_OFFLOAD,
    QX_TAP_STEP_PERSIST,
};

// Creates a persistent TAP named `name` in the calling thread's network namespace (TUNSETIFF,
// TUNSETOWNER, TUNSETGROUP, TUNSETVNETHDRSZ, TUNSETOFFLOAD, TUNSETPERSIST: ioctl macros).
// Offload bits the kernel refuses are dropped one by one; `accepted` says what stayed.
// Fails with -EEXIST when a link of that name exists already.
int qx_tap_create(const char *_Nonnull name, struct qx_tap_params *_Nonnull params);

// Opens /dev/net/tun and attaches it to the existing TAP `name` (TUNSETIFF is an ioctl macro).
// Returns the new close-on-exec fd.
int qx_tap_attach(const char *_Nonnull name, int multi_queue, int vnet_hdr);

// The TAP's vnet header size seen through an attached queue fd (TUNGETVNETHDRSZ, an ioctl macro).
int qx_tap_vnet_hdr_size(int fd);

// Number of ethtool feature strings (ETHTOOL_GSSET_INFO, an ioctl).
int qx_ethtool_feature_count(const char *_Nonnull ifname);

// ETHTOOL_GSTRINGS(ETH_SS_FEATURES) + ETHTOOL_GFEATURES: `names` receives count*32 bytes of
// NUL-padded names, `active` a bit per feature (count bits, 32 per word). Returns the count.
int qx_ethtool_features(const char *_Nonnull ifname, int count, char *_Nonnull names,
                        uint32_t *_Nonnull active);

// Enters a private mount namespace for this thread and mounts a fresh sysfs on /sys, so /sys
// shows the thread's network namespace (what `ip netns exec` does; mount(2) flag macros).
int qx_private_sysfs(void);

// Bind-mounts the calling thread's network namespace onto `path` (mount(2) flag macros).
int qx_bind_thread_netns(const char *_Nonnull path);

// Makes `dir` a shared mount point (bind-mounting it on itself first if needed), so namespace
// bind mounts made or removed below it propagate to threads with private mount namespaces
// (mount(2) flag macros; what `ip netns add` does for /run/netns).
int qx_make_shared_mountpoint(const char *_Nonnull dir);

// Lazily unmounts `path` (umount2 with MNT_DETACH).
int qx_detach_mount(const char *_Nonnull path);

// Creates a character device node (makedev is a macro); replaces nothing.
int qx_mknod_char(const char *_Nonnull path, unsigned int mode, unsigned int major, unsigned int minor);

// st_rdev of `path` split into major/minor when it is a character device (-ENODEV if not).
int qx_char_device_numbers(const char *_Nonnull path, unsigned int *_Nonnull major, unsigned int *_Nonnull minor);
