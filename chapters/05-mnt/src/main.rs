fn main() {
    ch01_process::main::<ch05_mnt::Opts>()
}
