# A hostile program: walks from a tuple to object's subclasses. The policy refuses it.
base = ().__class__.__bases__[0]
log(base.__subclasses__())
