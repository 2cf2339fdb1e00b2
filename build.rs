//! The shipped templates are built into the binary (include_dir): a change
//! under templates/ must rebuild it.

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
