//! Hostile base images: what extraction into the store and into outputs
//! refuses.

use std::io::Write as _;
use std::path::Path;

use crate::util::{Output, imgbuild_in, layout_with_blob, sha256_digest};

/// A tar of one regular file `name` holding `size` bytes of `byte`.
fn tar_of(name: &str, size: usize, byte: u8) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            name,
            std::io::Read::take(std::io::repeat(byte), size as u64),
        )
        .unwrap();
    builder.into_inner().unwrap()
}

/// A project whose one stage is based on `base` and writes a file, which
/// needs the base's layers extracted.
fn project_on(base: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("imgbuild.toml"),
        format!(
            "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [{{ file = \"x\", to = \"/x\" }}]\n[images.a]\nstage = \"a\"\n",
            base.display()
        ),
    )
    .unwrap();
    dir
}

fn apply(project: &Path, args: &[&str]) -> Output {
    let store = project.join(".store");
    let mut all = vec!["--store", store.to_str().unwrap(), "apply"];
    all.extend_from_slice(args);
    imgbuild_in(project, &all)
}

#[test]
fn layout_blob_larger_than_its_descriptor_is_refused() {
    let tar = tar_of("file", 1000, b'a');
    let base = tempfile::tempdir().unwrap();
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    layout_with_blob(base.path(), &tar, layer_type, &sha256_digest(&tar));
    // Append to the blob: the descriptor's size no longer matches.
    let path = base
        .path()
        .join("blobs/sha256")
        .join(&sha256_digest(&tar)["sha256:".len()..]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0; 512])
        .unwrap();
    let project = project_on(base.path());
    let out = apply(project.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("but its descriptor declares {}", tar.len())),
        "{}",
        out.stderr
    );
}
