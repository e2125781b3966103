#!/usr/bin/python3
"""A FUSE file system that loses, on command, everything not yet synced: a power cut for tests.

Usage: lossyfs.py STATE_DIR MOUNT_POINT

It keeps two states. The live state is what programs see. The durable state changes only when a
program syncs: fsync/fdatasync of a file copies that file's unsynced byte ranges and its size; a write
through a handle opened with O_DSYNC or O_SYNC is durable when it returns; fsync of a directory makes
its current entries (names, renames, removals, new files and folders) durable. Nothing else is.

Commands, one a line on stdin, each answered with one line on stdout:
  cut    power is lost now: from here on every write, sync and namespace change fails with EIO
         (so nothing more becomes durable); answers CUT <unsynced bytes lost> <live entries lost>
  sync   make everything durable (as `sync` would); answers SYNCED
  quit   exit at the next unmount; answers BYE
After each unmount the file system comes back at once holding exactly the durable state (the
machine rebooted), and prints MOUNTED once the kernel has it mounted again. It prints MOUNTED
after the first mount too. At the end of stdin (the test is gone) it unmounts itself and exits.

The environment variable LOSSYFS_IGNORE=fsyncdir makes directory fsyncs change nothing (a program
that forgets them), so a test can show that it notices the loss that follows.

Files' bytes live in STATE_DIR/live/<inode> and STATE_DIR/durable/<inode>; the tree, in memory.
One thread serves the kernel (nothreads), so the tree needs a lock only against the command thread.
"""
import errno
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations

ROOT = 1
END = 1 << 62
IGNORE = set(filter(None, os.environ.get('LOSSYFS_IGNORE', '').split(',')))
# Operations that change nothing; every other fails with EIO once the power is cut.
READ_ONLY = {'getattr', 'readdir', 'read', 'opendir', 'releasedir', 'release', 'flush', 'access', 'statfs', 'init', 'destroy', 'open'}


class Inode:
    __slots__ = ('kind', 'mode', 'entries', 'durable_entries', 'dirty', 'durable', 'mtime')

    def __init__(self, kind, mode):
        self.kind = kind  # 'd' or 'f'
        self.mode = mode & 0o7777
        self.entries = {} if kind == 'd' else None
        self.durable_entries = {} if kind == 'd' else None
        self.dirty = []  # unsynced byte ranges [start, end) of a file
        self.durable = False  # a file with a durable data copy
        self.mtime = time.time()


class LossyFs(Operations):
    use_ns = False

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.live_dir = os.path.join(state_dir, 'live')
        self.durable_dir = os.path.join(state_dir, 'durable')
        for d in (self.live_dir, self.durable_dir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        self.mutex = threading.RLock()
        self.inodes = {ROOT: Inode('d', 0o755)}
        self.next_ino = ROOT + 1
        self.handles = {}  # fh -> (ino, fd, dsync)
        self.next_fh = 1
        self.frozen = False

    # -- bookkeeping ------------------------------------------------------------------------------
    def __call__(self, op, *args):
        with self.mutex:
            if self.frozen and op not in READ_ONLY:
                raise FuseOSError(errno.EIO)
            if not hasattr(self, op):
                raise FuseOSError(errno.ENOSYS)
            return getattr(self, op)(*args)

    def live(self, ino):
        return os.path.join(self.live_dir, str(ino))

    def durable_path(self, ino):
        return os.path.join(self.durable_dir, str(ino))

    def lookup(self, path):
        ino = ROOT
        for name in filter(None, path.split('/')):
            node = self.inodes[ino]
            if node.kind != 'd' or name not in node.entries:
                raise FuseOSError(errno.ENOENT)
            ino = node.entries[name]
        return ino

    def parent_of(self, path):
        head, name = os.path.split(path.rstrip('/'))
        parent = self.lookup(head or '/')
        if self.inodes[parent].kind != 'd':
            raise FuseOSError(errno.ENOTDIR)
        return parent, name

    def new_inode(self, kind, mode):
        ino = self.next_ino
        self.next_ino += 1
        self.inodes[ino] = Inode(kind, mode)
        if kind == 'f':
            open(self.live(ino), 'wb').close()
        return ino

    def sync_file(self, ino, ranges=None):
        """Copies unsynced ranges (or just `ranges`) of a file to its durable copy, with the live size."""
        node = self.inodes[ino]
        size = os.stat(self.live(ino)).st_size
        todo = node.dirty if ranges is None else ranges
        with open(self.live(ino), 'rb') as src, open(self.durable_path(ino), 'r+b' if node.durable else 'w+b') as dst:
            if ranges is None:
                dst.truncate(size)
            elif os.fstat(dst.fileno()).st_size < size:
                dst.truncate(size)
            for start, end in todo:
                end = min(end, size)
                if start >= end:
                    continue
                dst.seek(start)
                src.seek(start)
                dst.write(src.read(end - start))
        node.durable = True
        if ranges is None:
            node.dirty = []

    def sync_all(self):
        for ino, node in list(self.inodes.items()):
            if node.kind == 'd':
                node.durable_entries = dict(node.entries)
            else:
                self.sync_file(ino)

    def cut(self):
        self.frozen = True
        lost_bytes = sum(min(e, os.stat(self.live(i)).st_size) - s for i, n in self.inodes.items() if n.kind == 'f'
                         for s, e in n.dirty if s < e and s < os.stat(self.live(i)).st_size)
        lost_entries = sum(len(set(n.entries.items()) ^ set(n.durable_entries.items()))
                           for n in self.inodes.values() if n.kind == 'd')
        return lost_bytes, lost_entries

    def reboot(self):
        """The live state becomes the durable one; whatever it cannot reach is gone."""
        for fd in [h[1] for h in self.handles.values()]:
            os.close(fd)
        self.handles = {}
        reachable = set()
        stack = [ROOT]
        while stack:
            ino = stack.pop()
            if ino in reachable:
                continue
            reachable.add(ino)
            node = self.inodes[ino]
            if node.kind == 'd':
                stack.extend(node.durable_entries.values())
        for ino in list(self.inodes):
            node = self.inodes[ino]
            if ino not in reachable:
                del self.inodes[ino]
                for p in (self.live(ino), self.durable_path(ino)):
                    if os.path.exists(p):
                        os.unlink(p)
                continue
            if node.kind == 'd':
                node.entries = dict(node.durable_entries)
            else:
                if node.durable:
                    shutil.copyfile(self.durable_path(ino), self.live(ino))
                else:
                    open(self.live(ino), 'wb').close()
                node.dirty = []
        self.frozen = False

    # -- the file system ---------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        ino = self.handles[fh.fh][0] if fh and fh.fh in self.handles else self.lookup(path)
        node = self.inodes[ino]
        now = node.mtime
        if node.kind == 'd':
            return dict(st_mode=stat.S_IFDIR | node.mode, st_nlink=2, st_size=4096, st_ino=ino,
                        st_atime=now, st_mtime=now, st_ctime=now)
        size = os.stat(self.live(ino)).st_size
        return dict(st_mode=stat.S_IFREG | node.mode, st_nlink=1, st_size=size, st_ino=ino,
                    st_blocks=(size + 511) // 512, st_atime=now, st_mtime=now, st_ctime=now)

    def readdir(self, path, fh):
        return ['.', '..'] + list(self.inodes[self.lookup(path)].entries)

    def statfs(self, path):
        s = os.statvfs(self.state_dir)
        return dict(f_bsize=s.f_bsize, f_frsize=s.f_frsize, f_blocks=s.f_blocks, f_bfree=s.f_bfree,
                    f_bavail=s.f_bavail, f_files=s.f_files, f_ffree=s.f_ffree, f_namemax=255)

    def mkdir(self, path, mode):
        parent, name = self.parent_of(path)
        if name in self.inodes[parent].entries:
            raise FuseOSError(errno.EEXIST)
        self.inodes[parent].entries[name] = self.new_inode('d', mode)
        self.inodes[parent].mtime = time.time()

    def rmdir(self, path):
        parent, name = self.parent_of(path)
        ino = self.lookup(path)
        if self.inodes[ino].kind != 'd':
            raise FuseOSError(errno.ENOTDIR)
        if self.inodes[ino].entries:
            raise FuseOSError(errno.ENOTEMPTY)
        del self.inodes[parent].entries[name]

    def unlink(self, path):
        parent, name = self.parent_of(path)
        ino = self.lookup(path)
        if self.inodes[ino].kind == 'd':
            raise FuseOSError(errno.EISDIR)
        # The inode stays: open handles and durable entries may still reach it.
        del self.inodes[parent].entries[name]

    def rename(self, old, new):
        old_parent, old_name = self.parent_of(old)
        new_parent, new_name = self.parent_of(new)
        ino = self.lookup(old)
        target = self.inodes[new_parent].entries.get(new_name)
        if target is not None and target != ino:
            if self.inodes[target].kind == 'd':
                if self.inodes[ino].kind != 'd':
                    raise FuseOSError(errno.EISDIR)
                if self.inodes[target].entries:
                    raise FuseOSError(errno.ENOTEMPTY)
            elif self.inodes[ino].kind == 'd':
                raise FuseOSError(errno.ENOTDIR)
        del self.inodes[old_parent].entries[old_name]
        self.inodes[new_parent].entries[new_name] = ino

    def link(self, target, source):
        ino = self.lookup(source)
        if self.inodes[ino].kind == 'd':
            raise FuseOSError(errno.EPERM)
        parent, name = self.parent_of(target)
        if name in self.inodes[parent].entries:
            raise FuseOSError(errno.EEXIST)
        self.inodes[parent].entries[name] = ino

    def symlink(self, target, source):
        raise FuseOSError(errno.EPERM)

    def chmod(self, path, mode):
        self.inodes[self.lookup(path)].mode = mode & 0o7777

    def chown(self, path, uid, gid):
        pass

    def utimens(self, path, times=None):
        self.inodes[self.lookup(path)].mtime = times[1] if times else time.time()

    def open_handle(self, ino, flags):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (ino, os.open(self.live(ino), os.O_RDWR), bool(flags & (os.O_DSYNC | os.O_SYNC)))
        return fh

    def create(self, path, mode, fi):
        parent, name = self.parent_of(path)
        ino = self.inodes[parent].entries.get(name)
        if ino is None:
            ino = self.new_inode('f', mode)
            self.inodes[parent].entries[name] = ino
            self.inodes[parent].mtime = time.time()
        elif fi.flags & os.O_EXCL:
            raise FuseOSError(errno.EEXIST)
        fi.fh = self.open_handle(ino, fi.flags)
        return 0

    def open(self, path, fi):
        ino = self.lookup(path)
        if self.frozen and fi.flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EIO)
        fi.fh = self.open_handle(ino, fi.flags)
        return 0

    def read(self, path, size, offset, fi):
        return os.pread(self.handles[fi.fh][1], size, offset)

    def write(self, path, data, offset, fi):
        ino, fd, dsync = self.handles[fi.fh]
        written = os.pwrite(fd, data, offset)
        node = self.inodes[ino]
        node.mtime = time.time()
        node.dirty.append((offset, offset + written))
        if dsync:
            self.sync_file(ino, [(offset, offset + written)])
        return written

    def truncate(self, path, length, fh=None):
        ino = self.handles[fh.fh][0] if fh and fh.fh in self.handles else self.lookup(path)
        os.truncate(self.live(ino), length)
        self.inodes[ino].dirty.append((length, END))

    def fsync(self, path, datasync, fi):
        self.sync_file(self.handles[fi.fh][0])

    def fsyncdir(self, path, datasync, fh):
        if 'fsyncdir' in IGNORE:
            return 0
        node = self.inodes[self.lookup(path)]
        node.durable_entries = dict(node.entries)

    def flush(self, path, fi):
        return 0

    def release(self, path, fi):
        handle = self.handles.pop(fi.fh, None)
        if handle:
            os.close(handle[1])

    def access(self, path, amode):
        self.lookup(path)


def answer(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def main():
    state_dir, mount_point = sys.argv[1], sys.argv[2]
    fs = LossyFs(state_dir)
    quitting = threading.Event()

    def commands():
        for line in sys.stdin:
            command = line.strip()
            with fs.mutex:
                if command == 'cut':
                    answer('CUT %d %d' % fs.cut())
                elif command == 'sync':
                    fs.sync_all()
                    answer('SYNCED')
                elif command == 'quit':
                    quitting.set()
                    answer('BYE')
                else:
                    answer('ERROR unknown command %r' % command)
        # The test that drives us is gone: leave no mount behind.
        quitting.set()
        subprocess.run(['fusermount', '-u', '-z', mount_point], check=False)

    threading.Thread(target=commands, daemon=True).start()
    fs.init = lambda path: answer('MOUNTED')
    while True:
        FUSE(fs, mount_point, foreground=True, nothreads=True, raw_fi=True, big_writes=True, hard_remove=True,
             negative_timeout=0, attr_timeout=0, entry_timeout=0, fsname='lossyfs', max_write=131072)
        if quitting.is_set():
            return
        with fs.mutex:
            fs.reboot()


if __name__ == '__main__':
    main()
