pub mod networktables;
