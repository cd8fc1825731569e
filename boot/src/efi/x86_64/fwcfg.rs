//! QEMU fw_cfg over I/O ports (selector 0x510, data 0x511), for the command-line
//! override `opt/hotmem/cmdline` that the host passes with `-fw_cfg name=...,string=...`
//! (the lookup is [`boot::fwcfg::cmdline_override`]).

use alloc::string::String;

use boot::fwcfg::{self, FwCfg};

use super::io::{inb, outw};

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;

/// The port-I/O fw_cfg of QEMU's PC machines.
struct Ports;

impl FwCfg for Ports {
    fn select(&mut self, key: u16) {
        outw(SELECTOR, key);
    }

    fn read(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = inb(DATA);
        }
    }
}

/// The override, if QEMU has fw_cfg and the file exists.
pub fn cmdline_override() -> Option<String> {
    fwcfg::cmdline_override(&mut Ports)
}
