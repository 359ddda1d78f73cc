fn main() {
    ch01_process::main::<ch08_overlay::Opts>()
}
