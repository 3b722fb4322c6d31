#!/usr/bin/env python3
"""seeds_domain.py DIR: seed inputs for fuzz_domain: libvirt domains with
virtio-scsi controllers and disks using every element the parser maps
(driver, source, nested backingStore, identity, blockio, boot, address),
scuse's metadata (transport, controller, lun, option, moved disks), the
project's docs/examples, and a few broken ones."""
import glob
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

FULL_DISK = """    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writethrough' discard='unmap'/>
      <source file='/img/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/img/mid.qcow2'/>
        <backingStore type='block'><format type='raw'/><source dev='/dev/vg/b'/><backingStore/></backingStore>
      </backingStore>
      <target dev='sda' bus='scsi' rotation_rate='1'/>
      <serial>SER-0001</serial>
      <wwn>0x5000c5005ca1ab1e</wwn>
      <vendor>ACME</vendor>
      <product>ImageDisk</product>
      <blockio logical_block_size='512' physical_block_size='4096'/>
      <boot order='1'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='3'/>
    </disk>
"""
SMALL = """    <disk type='block'><driver type='raw' cache='unsafe'/><source dev='/dev/x'/><target dev='sdb'/><shareable/></disk>
    <disk type='file'><driver type='vhd'/><source file='/a.vhdx'/><target dev='sdc' bus='scsi'/></disk>
    <disk type='file'><source file='/v'/><target dev='vda' bus='virtio'/></disk>
"""
META = """  <metadata>
    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>
      <scuse:transport type='vhost-user-scsi' socket-dir='/run/scuse'/>
      <scuse:controller index='1' wwpn='naa.5001405df3e54061'/>
      <scuse:lun dev='sdd' deny='0x42,0x93/0x12'><scuse:option name='l2-cache-size' value='4M'/></scuse:lun>
      <controller type='scsi' index='1' model='virtio-scsi'><driver queues='2'/></controller>
      <disk type='file'><driver type='qcow2'/><source file='/q'/><target dev='sdd'/><address type='drive' controller='1' unit='0'/></disk>
    </scuse:domain>
  </metadata>
"""


def domain(body, meta=""):
    return ("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
            "  <name>vm1</name>\n  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\n"
            "  <memory unit='MiB'>256</memory>\n  <devices>\n"
            "    <controller type='scsi' index='0' model='virtio-scsi'><driver queues='4'/></controller>\n"
            + body + "  </devices>\n" + meta + "</domain>\n")


seeds = {
    "full": domain(FULL_DISK),
    "small": domain(SMALL),
    "meta": domain(SMALL, META),
    "hostdev": domain("    <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' "
                      "wwpn='naa.5001405df3e54061'/></hostdev>\n"),
    "bad-dup": domain(SMALL + SMALL),
    "bad-open": domain(FULL_DISK)[:400],
}
for name, text in seeds.items():
    with open(os.path.join(out, "seed-" + name + ".xml"), "w") as f:
        f.write(text)
for path in glob.glob(os.path.join(src, "docs", "examples", "*.xml")):
    with open(path) as f, open(os.path.join(out, "seed-ex-" + os.path.basename(path)), "w") as g:
        g.write(f.read())
