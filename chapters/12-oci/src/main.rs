fn main() {
    ch12_oci::cli::main()
}
