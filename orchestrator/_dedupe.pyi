from array import array

def add_batch(
    email_table: array[int],
    user_id_table: array[int],
    email_fps: array[int],
    user_id_fps: array[int],
    /,
) -> tuple[list[tuple[int, int]], int, int]: ...
