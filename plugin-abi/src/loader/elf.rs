//! The checks a plugin file passes before `dlopen` sees it.
//!
//! The dynamic loader trusts the file it maps: a loadable segment that
//! reaches past the end of the file is mapped anyway, and the first read of
//! the missing part kills the process with SIGBUS (a half-finished copy or
//! an interrupted package upgrade leaves exactly such a file). Tables that
//! the dynamic section points outside the file-backed memory are read the
//! same way. So every structure the loader reads before the plugin's own
//! code runs is checked here, on the file's bytes: the ELF header (class,
//! byte order, type, machine), the program headers, every loadable segment
//! and the dynamic segment, and the tables the dynamic section names.
//!
//! What this cannot check is the code and data inside the segments: a file
//! that passes is structurally a shared library for this machine, and its
//! code runs with the daemon's privileges, which is why the loader also
//! refuses files that anybody but root or the daemon's user could have
//! written.

// The header's words are u32 on 32-bit targets, where `.into()` widens.
#![allow(clippy::useless_conversion)]

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

#[cfg(target_pointer_width = "64")]
type Header = elf::FileHeader64<Endianness>;
#[cfg(target_pointer_width = "32")]
type Header = elf::FileHeader32<Endianness>;

/// The ELF class of this daemon's own code.
const OWN_CLASS: u8 = if cfg!(target_pointer_width = "64") {
    elf::ELFCLASS64.0
} else {
    elf::ELFCLASS32.0
};

/// The ELF machine of this daemon's own code.
const OWN_MACHINE: u16 = if cfg!(target_arch = "x86_64") {
    elf::EM_X86_64.0
} else if cfg!(target_arch = "aarch64") {
    elf::EM_AARCH64.0
} else if cfg!(target_arch = "x86") {
    elf::EM_386.0
} else if cfg!(target_arch = "arm") {
    elf::EM_ARM.0
} else if cfg!(target_arch = "riscv64") || cfg!(target_arch = "riscv32") {
    elf::EM_RISCV.0
} else if cfg!(target_arch = "powerpc64") {
    elf::EM_PPC64.0
} else if cfg!(target_arch = "s390x") {
    elf::EM_S390.0
} else if cfg!(target_arch = "loongarch64") {
    elf::EM_LOONGARCH.0
} else {
    0
};

/// What to do about a file cut short or damaged.
const REINSTALL: &str = "the file is truncated or damaged (an interrupted copy or \
                         upgrade leaves this); reinstall the plugin";

/// A name for the machines a plugin is most likely built for by mistake.
fn machine_name(m: u16) -> String {
    let name = match elf::Machine(m) {
        elf::EM_X86_64 => "x86_64",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_386 => "i386",
        elf::EM_ARM => "arm",
        elf::EM_RISCV => "riscv",
        elf::EM_PPC64 => "powerpc64",
        elf::EM_S390 => "s390x",
        elf::EM_LOONGARCH => "loongarch",
        _ => return format!("machine {m}"),
    };
    format!("{name} (machine {m})")
}

fn class_name(class: u8) -> String {
    match elf::FileClass(class) {
        elf::ELFCLASS32 => "32-bit".into(),
        elf::ELFCLASS64 => "64-bit".into(),
        _ => format!("unknown class {class}"),
    }
}

/// A memory range `[start, end)` of the library that the file backs: a
/// loadable segment's file part, at its virtual address.
#[derive(Clone, Copy)]
struct Backed {
    vaddr: u64,
    end: u64,
}

/// Checks that `data`, the whole content of a file, is a shared library
/// for this machine whose every loadable and dynamic part lies within the
/// file. The error is one line saying what is wrong and what to do.
pub fn check(data: &[u8]) -> Result<(), String> {
    let len = data.len() as u64;
    let ehsize = std::mem::size_of::<Header>();
    if data.len() < 16 || data[..4] != elf::ELFMAG {
        return Err(format!(
            "not an ELF shared library: invalid ELF header (the file does not start with \
             the ELF magic number{}); install the .so built by cargo",
            if data.len() < 4 {
                ", it is too short"
            } else {
                ""
            }
        ));
    }
    let class = data[4];
    if class != OWN_CLASS {
        return Err(format!(
            "not loadable: a {} ELF file, this daemon is {}; build the plugin for this machine",
            class_name(class),
            class_name(OWN_CLASS)
        ));
    }
    let own_order = if cfg!(target_endian = "little") {
        elf::ELFDATA2LSB.0
    } else {
        elf::ELFDATA2MSB.0
    };
    if data[5] != own_order {
        return Err(format!(
            "not loadable: ELF byte order {} is not this machine's; build the plugin for this machine",
            data[5]
        ));
    }
    if data.len() < ehsize {
        return Err(format!(
            "{} bytes, shorter than an ELF header ({ehsize} bytes): {REINSTALL}",
            data.len()
        ));
    }
    let header =
        Header::parse(data).map_err(|e| format!("invalid ELF header: {e}; {REINSTALL}"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("invalid ELF header: {e}"))?;
    let etype = header.e_type(endian);
    if etype != elf::ET_DYN {
        let what = match etype {
            elf::ET_EXEC => "an executable".to_string(),
            elf::ET_REL => "an object file (.o)".to_string(),
            elf::ET_CORE => "a core dump".to_string(),
            other => format!("ELF type {}", other.0),
        };
        return Err(format!(
            "not a shared library but {what}; build the plugin with crate-type = [\"cdylib\"]"
        ));
    }
    let machine = header.e_machine(endian).0;
    if machine != OWN_MACHINE {
        return Err(format!(
            "built for {}, this daemon runs on {}; build the plugin for this machine",
            machine_name(machine),
            machine_name(OWN_MACHINE)
        ));
    }
    let phoff: u64 = header.e_phoff(endian).into();
    let phnum = u64::from(header.e_phnum(endian));
    let phentsize = u64::from(header.e_phentsize(endian));
    let ph_end = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .unwrap_or(u64::MAX);
    if phoff == 0 || phnum == 0 {
        return Err(
            "has no program headers, so nothing to load; build the plugin \
                    with crate-type = [\"cdylib\"]"
                .into(),
        );
    }
    if ph_end > len {
        return Err(format!(
            "program headers end at byte {ph_end}, past the end of the file ({len} bytes): \
             {REINSTALL}"
        ));
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| format!("invalid program headers: {e}; {REINSTALL}"))?;

    let mut backed = Vec::new();
    let mut dynamic = None;
    for (i, ph) in phdrs.iter().enumerate() {
        let ptype = ph.p_type(endian);
        if ptype != elf::PT_LOAD && ptype != elf::PT_DYNAMIC {
            continue;
        }
        let what = if ptype == elf::PT_LOAD {
            "loadable segment"
        } else {
            "dynamic segment"
        };
        let offset: u64 = ph.p_offset(endian).into();
        let filesz: u64 = ph.p_filesz(endian).into();
        let memsz: u64 = ph.p_memsz(endian).into();
        let vaddr: u64 = ph.p_vaddr(endian).into();
        let end = offset.saturating_add(filesz);
        if end > len {
            return Err(format!(
                "{what} {i} (file bytes {offset}..{end}) reaches past the end of the file \
                 ({len} bytes): {REINSTALL}"
            ));
        }
        if filesz > memsz || vaddr.checked_add(memsz).is_none() {
            return Err(format!(
                "{what} {i} is inconsistent (file size {filesz}, memory size {memsz}): {REINSTALL}"
            ));
        }
        if ptype == elf::PT_LOAD {
            backed.push(Backed {
                vaddr,
                end: vaddr + filesz,
            });
        } else if dynamic.replace((i, ph)).is_some() {
            return Err(format!("has two dynamic segments: {REINSTALL}"));
        }
    }
    if backed.is_empty() {
        return Err(format!("has no loadable segment: {REINSTALL}"));
    }
    let Some((dyn_index, dyn_ph)) = dynamic else {
        return Err(
            "has no dynamic segment, so it cannot be a plugin; build the plugin with \
                    crate-type = [\"cdylib\"]"
                .into(),
        );
    };
    let inside = |addr: u64, size: u64| {
        let end = addr.checked_add(size);
        backed
            .iter()
            .any(|b| addr >= b.vaddr && end.is_some_and(|e| e <= b.end))
    };
    let dyn_vaddr: u64 = dyn_ph.p_vaddr(endian).into();
    let dyn_size: u64 = dyn_ph.p_filesz(endian).into();
    if !inside(dyn_vaddr, dyn_size) {
        return Err(format!(
            "dynamic segment {dyn_index} lies outside the loadable segments' file data: {REINSTALL}"
        ));
    }
    let entries = dyn_ph
        .dynamic(endian, data)
        .map_err(|e| format!("invalid dynamic segment: {e}; {REINSTALL}"))?
        .unwrap_or(&[]);
    check_dynamic(entries, endian, &inside)
}

/// The tables the dynamic section names must lie in file-backed memory,
/// with the sizes it gives them, and the entry sizes and the string
/// offsets must be the ones the loader expects.
fn check_dynamic<D: Dyn<Endian = Endianness>>(
    entries: &[D],
    endian: Endianness,
    inside: &dyn Fn(u64, u64) -> bool,
) -> Result<(), String> {
    let mut value = std::collections::HashMap::new();
    let mut terminated = false;
    for d in entries {
        let tag = d.tag(endian);
        if tag == elf::DT_NULL {
            terminated = true;
            break;
        }
        value.entry(tag.0).or_insert(d.val(endian));
    }
    if !terminated {
        return Err(format!("dynamic section has no end marker: {REINSTALL}"));
    }
    let get = |tag: elf::DynamicTag| value.get(&tag.0).copied();
    // Rel entries are two words, Rela entries three, symbols 24 bytes on
    // 64-bit and 16 on 32-bit.
    let word = std::mem::size_of::<D>() as u64 / 2;
    let expect = [
        (elf::DT_RELAENT, "DT_RELAENT", 3 * word),
        (elf::DT_RELENT, "DT_RELENT", 2 * word),
        (elf::DT_SYMENT, "DT_SYMENT", if word == 8 { 24 } else { 16 }),
        (elf::DT_RELRENT, "DT_RELRENT", word),
    ];
    for (tag, name, want) in expect {
        if let Some(v) = get(tag) {
            if v != want {
                return Err(format!(
                    "dynamic entry {name} is {v}, not {want}: {REINSTALL}"
                ));
            }
        }
    }
    if let Some(kind) = get(elf::DT_PLTREL) {
        if kind != elf::DT_RELA.0 as u64 && kind != elf::DT_REL.0 as u64 {
            return Err(format!(
                "dynamic entry DT_PLTREL is {kind}, neither DT_RELA nor DT_REL: {REINSTALL}"
            ));
        }
    }
    let strsz = get(elf::DT_STRSZ);
    // Each table: its address tag, its size tag (or a fixed minimum), and
    // its name for the message.
    let tables = [
        (elf::DT_STRTAB, Some(elf::DT_STRSZ), "string table"),
        (elf::DT_SYMTAB, None, "symbol table"),
        (elf::DT_HASH, None, "hash table"),
        (elf::DT_GNU_HASH, None, "GNU hash table"),
        (elf::DT_RELA, Some(elf::DT_RELASZ), "relocations"),
        (elf::DT_REL, Some(elf::DT_RELSZ), "relocations"),
        (elf::DT_RELR, Some(elf::DT_RELRSZ), "relative relocations"),
        (elf::DT_JMPREL, Some(elf::DT_PLTRELSZ), "PLT relocations"),
        (
            elf::DT_INIT_ARRAY,
            Some(elf::DT_INIT_ARRAYSZ),
            "initialiser array",
        ),
        (
            elf::DT_FINI_ARRAY,
            Some(elf::DT_FINI_ARRAYSZ),
            "finaliser array",
        ),
        (
            elf::DT_PREINIT_ARRAY,
            Some(elf::DT_PREINIT_ARRAYSZ),
            "pre-initialiser array",
        ),
        (elf::DT_VERSYM, None, "symbol versions"),
        (elf::DT_VERDEF, None, "version definitions"),
        (elf::DT_VERNEED, None, "version needs"),
    ];
    for (tag, size_tag, name) in tables {
        let Some(addr) = get(tag) else { continue };
        let size = match size_tag {
            Some(s) => get(s).unwrap_or(0),
            None => 1,
        };
        if !inside(addr, size.max(1)) {
            return Err(format!(
                "the dynamic section's {name} ({size} bytes at {addr:#x}) lies outside the \
                 file's loadable data: {REINSTALL}"
            ));
        }
    }
    for (tag, name) in [
        (elf::DT_SONAME, "the library name"),
        (elf::DT_RUNPATH, "the search path"),
        (elf::DT_RPATH, "the search path"),
    ] {
        let Some(offset) = get(tag) else { continue };
        if strsz.is_none_or(|n| offset >= n) {
            return Err(format!(
                "the dynamic section names {name} outside its string table: {REINSTALL}"
            ));
        }
    }
    // Every DT_NEEDED, not only the first.
    for d in entries {
        if d.tag(endian) == elf::DT_NULL {
            break;
        }
        if d.tag(endian) == elf::DT_NEEDED && strsz.is_none_or(|n| d.val(endian) >= n) {
            return Err(format!(
                "the dynamic section names a needed library outside its string table: {REINSTALL}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary itself: an ELF file of this machine, but an
    /// executable (or a position-independent one, which is ET_DYN).
    fn own_exe() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn junk_and_short_files_are_not_elf() {
        assert!(check(b"").unwrap_err().contains("invalid ELF header"));
        assert!(check(b"\x7fEL").unwrap_err().contains("invalid ELF header"));
        let junk = "this is not an ELF file\n".repeat(64);
        assert!(check(junk.as_bytes())
            .unwrap_err()
            .contains("invalid ELF header"));
        let exe = own_exe();
        let e = check(&exe[..40]).unwrap_err();
        assert!(e.contains("shorter than an ELF header"), "{e}");
    }

    #[test]
    fn class_and_machine_are_ours() {
        let mut exe = own_exe();
        exe[4] = if OWN_CLASS == elf::ELFCLASS64.0 {
            elf::ELFCLASS32.0
        } else {
            elf::ELFCLASS64.0
        };
        let e = check(&exe).unwrap_err();
        assert!(e.contains("ELF file, this daemon is"), "{e}");
        let mut exe = own_exe();
        // e_machine is at byte 18, in the file's (our) byte order.
        let other: u16 = if OWN_MACHINE == elf::EM_AARCH64.0 {
            elf::EM_X86_64.0
        } else {
            elf::EM_AARCH64.0
        };
        exe[18..20].copy_from_slice(&other.to_ne_bytes());
        exe[16..18].copy_from_slice(&elf::ET_DYN.0.to_ne_bytes());
        let e = check(&exe).unwrap_err();
        assert!(
            e.contains("built for") && e.contains("this daemon runs on"),
            "{e}"
        );
    }

    #[test]
    fn an_executable_is_not_a_library() {
        let mut exe = own_exe();
        exe[16..18].copy_from_slice(&elf::ET_EXEC.0.to_ne_bytes());
        let e = check(&exe).unwrap_err();
        assert!(e.contains("not a shared library but an executable"), "{e}");
    }

    #[test]
    fn every_cut_of_a_library_is_refused() {
        // The test binary is a position-independent executable (ET_DYN
        // with a dynamic segment) on the usual toolchains; it passes whole
        // and every cut inside its loadable data is refused.
        let exe = own_exe();
        check(&exe).unwrap();
        let last_load_end = {
            let h = Header::parse(&exe[..]).unwrap();
            let en = h.endian().unwrap();
            h.program_headers(en, &exe[..])
                .unwrap()
                .iter()
                .filter(|p| p.p_type(en) == elf::PT_LOAD)
                .map(|p| u64::from(p.p_offset(en)) + u64::from(p.p_filesz(en)))
                .max()
                .unwrap()
        };
        let step = (last_load_end / 997).max(1) as usize;
        for cut in (0..last_load_end as usize).step_by(step) {
            assert!(check(&exe[..cut]).is_err(), "cut at {cut} accepted");
        }
    }
}
