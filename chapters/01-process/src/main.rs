fn main() {
    ch01_process::main::<ch01_process::Opts>()
}
